"""``wsolbench score MAPS.npz --protocol NAME``: score maps that any tool produced."""
