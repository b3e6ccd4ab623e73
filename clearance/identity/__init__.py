"""Who decided, proven: SSH signatures (:mod:`.sshsig`) and the statements people and the service sign."""
