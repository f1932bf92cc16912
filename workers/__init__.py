"""The worker side of SnapAsset: the generation pipeline and the processes that run it."""
