"""Drone image metadata, QA checks, footprints and manifests."""
