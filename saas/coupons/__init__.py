"""Coupons (クーポン) for self-pay services: LINE's coupon API, sends, patients' tickets, desk redemption."""
