"""Operations tools for a running paystream environment (local stack or AWS)."""
