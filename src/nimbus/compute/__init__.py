"""FaaS: zygote, workers, instance pools and the invoker."""
