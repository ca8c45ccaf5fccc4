"""The 1:1 chat inbox: conversations, assignment, status, replies by reply token or push."""
