"""``ser info``: a bundle's manifest, with every model file's hash and the fingerprint verified."""

from __future__ import annotations

import json

import click

from edge.cli.common import _load, main, model_option, runtime_option, variant_option
from edge.errors import SerError


@main.command()
@model_option
@runtime_option
@variant_option
def info(model, runtime, variant):
    """Print a bundle's manifest and verify every model file's hash and the frontend fingerprint."""
    from edge.bundle import verified_model_file

    bundle = _load(model, runtime, variant)
    manifest = bundle.manifest
    try:
        for name, (file, sha256) in manifest.model_files().items():
            verified_model_file(bundle.path, file, sha256)
    except SerError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(manifest.document, indent=2))
    click.echo(f"bundle: {bundle.path}", err=True)
    click.echo(f"runtime: {bundle.runtime}", err=True)
    click.echo(f"model files: {', '.join(f for f, _ in manifest.model_files().values())} (sha256 verified)", err=True)
    click.echo(f"variant: {bundle.variant} runs here", err=True)
    click.echo(f"fingerprint: {manifest.fingerprint} verified (this frontend reproduces it)", err=True)
