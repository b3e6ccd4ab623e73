"""``clearance serve``: the HTTP endpoints through which channels deliver decisions."""
