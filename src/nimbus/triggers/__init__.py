"""Event sources -> invoker adapters, all under the one FailurePolicy."""
