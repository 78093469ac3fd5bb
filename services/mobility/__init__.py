"""Mobility service: buses, trams, tickets and car parks (issue 12)."""
