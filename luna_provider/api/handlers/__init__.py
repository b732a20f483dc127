"""Request handlers, one module per resource; operationIds of the spec resolve here."""
