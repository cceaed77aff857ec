"""Event envelopes: CloudEvents attributes, trace context, and the AWS Lambda shapes."""
