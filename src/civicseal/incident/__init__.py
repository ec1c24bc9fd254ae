"""Incident response: from "the USB stick is gone" to a regulator-ready report and letters."""
