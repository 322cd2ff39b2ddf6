"""Who is calling: identities, dev tokens, provider JWTs (JWKS, presets)."""
