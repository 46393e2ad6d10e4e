"""CredentialStore: the OS keyring only, typed errors, never a plaintext fallback."""

from __future__ import annotations

import keyring
import keyring.backends.fail
import keyring.backends.null
import keyring.errors
import pytest

from crmsync_desktop.auth.credentials import SERVICE_NAME, CredentialStore, SecretKind
from crmsync_desktop.errors import KeyringLockedError, KeyringUnavailableError, SecretMissingError
from tests.fakes.keyring_backend import InMemoryKeyring


def test_round_trip_uses_service_and_profile_account(memory_keyring: InMemoryKeyring) -> None:
    store = CredentialStore()
    store.set_secret("Contoso", SecretKind.SERVER_CLIENT_SECRET, "abc~123")
    assert memory_keyring.entries == {(SERVICE_NAME, "Contoso:server-client-secret"): "abc~123"}
    assert store.get_secret("Contoso", SecretKind.SERVER_CLIENT_SECRET) == "abc~123"
    assert store.has_secret("Contoso", SecretKind.SERVER_CLIENT_SECRET)
    assert not store.has_secret("Contoso", SecretKind.CLIENT_PASSWORD)


def test_missing_secret_says_where_to_enter_it() -> None:
    with pytest.raises(SecretMissingError, match="Open Connection"):
        CredentialStore().get_secret("Contoso", SecretKind.CLIENT_PASSWORD)


def test_delete_profile_removes_every_kind(memory_keyring: InMemoryKeyring) -> None:
    store = CredentialStore()
    store.set_secret("A", SecretKind.SERVER_CLIENT_SECRET, "one1")
    store.set_secret("A", SecretKind.CLIENT_PASSWORD, "two2")
    store.set_secret("B", SecretKind.CLIENT_PASSWORD, "three")
    store.delete_profile("A")
    assert set(memory_keyring.entries) == {(SERVICE_NAME, "B:client-password")}
    store.delete_profile("A")  # idempotent


@pytest.mark.parametrize("backend", [keyring.backends.fail.Keyring(), keyring.backends.null.Keyring()])
def test_unusable_backend_names_the_fix(backend: keyring.backend.KeyringBackend) -> None:
    keyring.set_keyring(backend)
    store = CredentialStore()
    with pytest.raises(KeyringUnavailableError) as info:
        store.set_secret("A", SecretKind.CLIENT_PASSWORD, "pw12")
    assert "Secret Service" in info.value.message  # the fix, named (this suite runs on Linux)
    assert "only ever stored in the OS keyring" in info.value.message


def test_plaintext_backend_is_refused() -> None:
    class PlaintextKeyring(InMemoryKeyring):
        pass

    PlaintextKeyring.__module__ = "keyrings.alt.file"
    keyring.set_keyring(PlaintextKeyring())
    with pytest.raises(KeyringUnavailableError):
        CredentialStore().set_secret("A", SecretKind.CLIENT_PASSWORD, "pw12")


def test_locked_keyring_is_reported_as_locked_not_wrong_password() -> None:
    class Locked(InMemoryKeyring):
        def get_password(self, service: str, username: str) -> str | None:
            raise keyring.errors.KeyringLocked("locked")

    keyring.set_keyring(Locked())
    with pytest.raises(KeyringLockedError, match="Unlock"):
        CredentialStore().get_secret("A", SecretKind.CLIENT_PASSWORD)


def test_async_variants_run_off_the_loop() -> None:
    import asyncio
    import threading

    seen: list[str] = []

    class Recording(InMemoryKeyring):
        def set_password(self, service: str, username: str, password: str) -> None:
            seen.append(threading.current_thread().name)
            super().set_password(service, username, password)

    keyring.set_keyring(Recording())
    store = CredentialStore()

    async def scenario() -> str:
        await store.aset_secret("A", SecretKind.CLIENT_PASSWORD, "pw12")
        return await store.aget_secret("A", SecretKind.CLIENT_PASSWORD)

    assert asyncio.run(scenario()) == "pw12"
    assert seen and seen[0] != threading.main_thread().name
