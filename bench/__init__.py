def bench_key(app: object) -> str:
    """A chat key of the default tenant, made in the app's own store (benchmarks call the API
    like any client)."""
    from service.store.tenants import KeySpec

    tenants = app.state.components.tenants  # type: ignore[attr-defined]
    return str(tenants.create_key("default", KeySpec("bench", "secret", ["chat"]))[1])
