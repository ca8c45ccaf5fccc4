"""Inflow sources (流入経路): tracked add-friend links and QR codes, and what each brings in."""
