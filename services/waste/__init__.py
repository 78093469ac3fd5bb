"""Waste collection: container fill sensors, full / fire / tipped / battery alerts, fill-rate
prediction and collection-round planning. ``domain/`` is the pure part, ``data/`` the seed.
"""
