"""App JWTs: GitHub's claims, RS256, and reuse until shortly before expiry."""

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from framework.auth.app_jwt import AppJWT, jwt_claims


def test_claims_backdate_iat_and_expire_within_ten_minutes_of_issue() -> None:
    claims = jwt_claims("123", now=1_000_000.7)
    assert claims == {"iat": 999_940, "exp": 1_000_540, "iss": "123"}
    assert claims["exp"] - 1_000_000 <= 600


def test_token_is_rs256_and_verifies_with_the_public_key(rsa_key: RSAPrivateKey) -> None:
    token = AppJWT("Iv1.abc", rsa_key, clock=lambda: 1_000_000.0).token()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(
        token, rsa_key.public_key(), algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims == {"iat": 999_940, "exp": 1_000_540, "iss": "Iv1.abc"}


def test_token_is_reused_until_a_minute_before_expiry(rsa_key: RSAPrivateKey) -> None:
    now = [1_000_000.0]
    signer = AppJWT("1", rsa_key, clock=lambda: now[0])
    first = signer.token()
    now[0] += 470  # 70 s before exp
    assert signer.token() == first
    now[0] += 15  # 55 s before exp: renewed
    second = signer.token()
    assert second != first
    assert jwt.decode(second, options={"verify_signature": False})["iat"] == int(now[0]) - 60


def test_invalidate_forces_a_new_token(rsa_key: RSAPrivateKey) -> None:
    now = [1_000_000.0]
    signer = AppJWT("1", rsa_key, clock=lambda: now[0])
    first = signer.token()
    now[0] += 1
    signer.invalidate()
    assert signer.token() != first


def test_repr_shows_no_key(rsa_key: RSAPrivateKey) -> None:
    assert repr(AppJWT("42", rsa_key)) == "AppJWT(issuer='42')"
