"""Patients' data rights (export, erasure) and sensitive-data detection in conversations."""
