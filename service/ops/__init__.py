"""Operations routes: liveness/readiness and Prometheus metrics, no key needed."""
