"""Local HTTP stand-ins for the services SnapAsset talks to, spoken to by the real clients."""
