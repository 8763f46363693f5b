"""The gRPC services of Nexus.

Each service lives in `nexus.services.<name>` with the same parts: the
servicer (transport only: validate, call the domain, map errors) and, as its
capability lands, the domain logic it calls (no gRPC types), its config and
its storage. `nexus.services.registry` lists them for the launcher.
"""
