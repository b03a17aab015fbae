"""`python -m localdev emulator`: the embedded AWS API, a patched moto server with `/_localdev/` extensions."""

from __future__ import annotations

import os

# As LocalStack uses, so that ARNs are the same on both local backends.
ACCOUNT_ID = "000000000000"


def main(argv: list[str]) -> int:
    # moto reads the account once, when first imported; set it here rather than at import of this
    # package so that importing the patches (unit tests) does not change other tests' moto account.
    os.environ["MOTO_ACCOUNT_ID"] = ACCOUNT_ID
    from localdev.emulator.server import main as serve

    return serve(argv)
