"""Analytics (分析): daily roll-ups, conversions, and the clinic, organization and agency pages."""
