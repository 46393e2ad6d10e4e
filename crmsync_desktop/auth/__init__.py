"""Sign-in to the organizations: MSAL token providers and the encrypted token cache. Qt-free by contract."""
