"""Auto-reply and FAQ chatbot (自動応答): keyword rules, greeting, fallback and hand-off."""
