"""Backend-neutral interfaces of the platform's services, one module per kind.

Triggers, the invoker and the SDK use only these; `nimbus.backends` implements them.
"""
