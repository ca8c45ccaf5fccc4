"""Clinic-defined friend fields (年代, 診察券番号, 最終来院日 ...) and their values."""
