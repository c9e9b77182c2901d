"""Field value extraction: syscall (from event + state) and k8s_audit (from the audit event)."""
