"""Operations: the platform's own records (invocations, logs, async jobs, dead letters)."""
