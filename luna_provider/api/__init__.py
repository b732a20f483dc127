"""The Luna Tasks REST API: a Connexion app serving ``api_spec/luna-tasks.yaml``."""
