"""Device-code sign-in through the engine: Test connection and Connect run the flow, the code is shown.

Against the emulated Entra ID over HTTPS: the prompt callback (the console's device-code dialog)
receives the code, the user approves it (here through the emulator's approval endpoint, as a
person would on the verification page), and the engine then reaches the organization.
"""

from __future__ import annotations

import asyncio
import ssl

import httpx

from crmsync_desktop.auth.credentials import SecretKind
from crmsync_desktop.auth.msal_provider import DeviceCodePrompt
from crmsync_desktop.domain import AuthKind, ConnectionProfile
from crmsync_desktop.errors import CrmSyncError
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.organizations import ProfileConnectorFactory
from tests.e2e.harness import PROFILE


def test_device_code_sign_in_runs_on_test_connection_and_is_reused(rig_factory) -> None:  # type: ignore[no-untyped-def]
    with rig_factory(seed_records=20) as rig:
        pair = rig.pair
        shown: list[DeviceCodePrompt] = []
        tls = ssl.create_default_context(cafile=str(pair.ca_path))

        def show_and_approve(prompt: DeviceCodePrompt) -> None:  # called from MSAL's worker thread
            shown.append(prompt)
            with httpx.Client(verify=tls) as admin:
                admin.post(f"{pair.identity_url}/_emulator/devicecode/approve",
                           json={"user_code": prompt.user_code, "upn": pair.user_upn}).raise_for_status()

        factory = ProfileConnectorFactory(rig.credentials, ca_bundle=str(pair.ca_path), on_device_code=show_and_approve)
        engine = SyncEngine(rig.db, factory, credentials=rig.credentials)
        profile = ConnectionProfile(
            name=PROFILE, server_url=pair.dataverse_url, server_auth_kind=AuthKind.DEVICE_CODE,
            client_id=pair.public_client_id, client_url=f"{pair.resco_url}/{pair.resco_org}",
            client_user=pair.resco_username,
        )

        async def scenario() -> tuple[object, object, object]:
            await engine.save_connection(profile, {SecretKind.CLIENT_PASSWORD: pair.resco_password})
            first = await engine.test_connection(PROFILE)
            again = await engine.test_connection(PROFILE)  # the cached sign-in: no second code
            result, _ = await engine.connect(PROFILE)
            await engine.aclose()
            return first, again, result

        try:
            (server, client), (server2, _), connected = asyncio.run(scenario())
        finally:
            factory.close()
        assert not isinstance(server, CrmSyncError), server
        assert not isinstance(client, CrmSyncError), client
        assert not isinstance(server2, CrmSyncError), server2
        assert len(shown) == 1 and shown[0].user_code and shown[0].verification_uri.startswith("https://")
        assert connected.status.value == "succeeded", connected.error  # type: ignore[attr-defined]
