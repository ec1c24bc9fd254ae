"""Zengin transfer files, bank and branch code checks, return-file reconciliation."""
