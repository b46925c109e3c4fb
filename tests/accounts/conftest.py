import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The suite creates many users; real PBKDF2 would dominate its run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
