"""The declarative model: decorators and nimbus.yaml -> one validated AppSpec -> plan."""
