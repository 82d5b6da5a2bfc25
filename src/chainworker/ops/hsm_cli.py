"""`chainworker hsm`: make the keys chainworker uses inside the PKCS#11 token of the
settings (`PKCS11_MODULE`, `PKCS11_TOKEN_LABEL`, `PKCS11_PIN`).

`create-key` makes an Ed25519 key pair (the authority, a fee payer) and prints its public
key; `create-seed` makes a new derivation seed in the token; `import-seed` moves an existing
`MINT_SEED` or `CUSTODIAL_SEED` in, read from standard input (never an argument: it would
show in the process list), so that every address it derived stays the same. Each refuses
a label the token already has: a second key under one label would make every later
lookup of it fail.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from chainworker.chain import keys
from chainworker.chain.errors import ChainError
from chainworker.chain.signer import create_ed25519_key
from chainworker.chain.token_seed import MIN_SEED_BYTES, create_seed, import_seed
from chainworker.config import Settings, get_settings
from chainworker.obs import logs
from chainworker.ops.worker_cli import _fail

hsm_app = typer.Typer(help="Make keys and seeds inside the PKCS#11 token.", no_args_is_help=True)
LabelOption = Annotated[str, typer.Option("--label", help="The key's CKA_LABEL in the token.")]


def _token(settings: Settings, label: str) -> tuple[str, str, str]:
    """(module, token label, PIN), after checking the label is new to the token."""
    import pkcs11

    module, token_label, pin = keys.token_of(settings)
    if not module or not token_label or not pin:
        raise _fail("chainworker hsm needs PKCS11_MODULE, PKCS11_TOKEN_LABEL and PKCS11_PIN")
    if not label or len(label) > 100:
        raise _fail("--label must be 1 to 100 characters")
    try:
        token = pkcs11.lib(module).get_token(token_label=token_label)
        with token.open(user_pin=pin) as session:
            taken = list(session.get_objects({pkcs11.Attribute.LABEL: label}))
    except (pkcs11.exceptions.PKCS11Error, RuntimeError) as error:
        raise _fail(f"cannot open PKCS#11 token {token_label!r}: {type(error).__name__}") from None
    if taken:
        raise _fail(f"the token already has an object labelled {label!r}: pick another label")
    return module, token_label, pin


@hsm_app.command("create-key")
def create_key(label: LabelOption) -> None:
    """Make an Ed25519 key pair in the token; print its public key."""
    module, token_label, pin = _token(get_settings(), label)
    typer.echo(str(create_ed25519_key(module, token_label, pin, label)))


@hsm_app.command("create-seed")
def create_seed_command(label: LabelOption) -> None:
    """Make a new derivation seed in the token (for a new deployment: it changes addresses)."""
    module, token_label, pin = _token(get_settings(), label)
    create_seed(module, token_label, pin, label)
    typer.echo(f"seed {label!r} created in token {token_label!r}")


@hsm_app.command("import-seed")
def import_seed_command(label: LabelOption) -> None:
    """Move an existing seed into the token, read from stdin (its text, as in MINT_SEED)."""
    module, token_label, pin = _token(get_settings(), label)
    text = sys.stdin.read().strip()
    logs.register_secret(text)
    value = text.encode("utf-8")
    if len(value) < MIN_SEED_BYTES:
        raise _fail(f"the seed on stdin must be at least {MIN_SEED_BYTES} bytes")
    try:
        import_seed(module, token_label, pin, label, value)
    except ChainError as error:
        raise _fail(str(error)) from None
    typer.echo(f"seed {label!r} imported into token {token_label!r}; set "
               f"MINT_SEED_PKCS11_KEY_LABEL or CUSTODIAL_SEED_PKCS11_KEY_LABEL to {label!r} "
               "and remove the seed from the environment")


def register(app: typer.Typer) -> None:
    app.add_typer(hsm_app, name="hsm")
