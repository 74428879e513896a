"""Shipped grid files (``wsolbench run --config NAME``): the main job and the papers' regime."""
