"""The mis-send guard: sends that need a second staff member's approval, and 「テスト送信」 to one's own LINE."""
