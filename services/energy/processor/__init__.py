"""The energy service's stream processors (circuits and PV sites)."""
