"""``openfuse policy ...`` and ``openfuse license ...``.

Registered into the ``openfuse`` command through the ``openfuse.cli`` entry-point group
(``policy = "openfuse_policy.cli:register"``). Importing this module imports nothing heavy; typer,
Cedar and cryptography load when :func:`register` runs or a command does.

Exit codes: 0 ok; 1 the check failed (invalid policies, failing tests, coverage below the
minimum, a license that does not apply); 2 bad input (missing file, malformed test file).
"""

# No `from __future__ import annotations` here: typer reads the commands' annotations at runtime,
# and they name things imported inside the builder functions.
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

__all__ = ["register"]


def register(app: "typer.Typer") -> None:
    """Add the ``policy`` and ``license`` command groups to ``app``."""
    app.add_typer(_policy_app(), name="policy")
    app.add_typer(_license_app(), name="license")


def _fail(message: object, code: int = 2) -> Exception:
    import typer

    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _policy_app() -> "typer.Typer":
    from pathlib import Path
    from typing import Annotated

    import typer

    policy_app = typer.Typer(no_args_is_help=True, help="ABAC policies: validate, test, explain.")

    @policy_app.command("validate")
    def validate(
        paths: Annotated[list[Path], typer.Argument(help="Cedar files or folders of *.cedar files.")],
    ) -> None:
        """Parse and validate policies against the OpenFuse schema; print Cedar's diagnostics."""
        from openfuse_policy.errors import PolicyValidationError
        from openfuse_policy.policy import PolicySet

        missing = [p for p in paths if not p.exists()]
        if missing:
            raise _fail(f"no such file or folder: {', '.join(map(str, missing))}")
        try:
            ps = PolicySet.load(*paths)
        except PolicyValidationError as e:
            typer.echo(f"invalid: {len(e.diagnostics)} problem(s)", err=True)
            for d in e.diagnostics:
                typer.echo(f"  {d}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"ok: {len(ps)} policies valid (version {ps.version})")
        for p in ps:
            extra = f"  obligations: {', '.join(map(str, p.obligations))}" if p.obligations else ""
            typer.echo(f"  {p.id:<40} {p.effect:<7} {p.source}:{p.line}{extra}")

    @policy_app.command("test")
    def test(
        paths: Annotated[list[Path], typer.Argument(help="YAML test files or folders of them.")],
        policies: Annotated[
            list[Path] | None,
            typer.Option("--policies", "-p", help="Policies under test (file or folder); repeatable."),
        ] = None,
        min_coverage: Annotated[
            float, typer.Option("--min-coverage", min=0.0, max=1.0, help="Fail below this share of policies.")
        ] = 0.0,
        builtin: Annotated[
            bool | None,
            typer.Option("--builtin/--no-builtin", help="Evaluate with the built-in community policies."),
        ] = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List passing cases too.")] = False,
    ) -> None:
        """Run policy test cases; report failures and policy coverage (like `opa test --coverage`)."""
        from openfuse_policy.errors import PolicyTestError, PolicyValidationError
        from openfuse_policy.policy import PolicySet
        from openfuse_policy.testing import load_suites, run_policy_tests

        try:
            suites = load_suites(*paths)
            under_test = PolicySet.load(*policies) if policies else None
            report = run_policy_tests(suites, under_test, builtin=builtin)
        except PolicyValidationError as e:
            raise _fail(e, 1) from None
        except PolicyTestError as e:
            raise _fail(e) from None
        if not report.results:
            raise _fail(f"no test cases found in {', '.join(map(str, paths))}")
        typer.echo(report.render(verbose=verbose, min_coverage=min_coverage))
        if not report.ok(min_coverage):
            raise typer.Exit(1)

    @policy_app.command("explain")
    def explain(
        entities: Annotated[
            Path, typer.Option("--entities", "-e", help="YAML: a test file, or a list of entities.")
        ],
        policies: Annotated[
            list[Path] | None, typer.Option("--policies", "-p", help="Custom policies (file or folder).")
        ] = None,
        case: Annotated[
            str | None, typer.Option("--case", help="Explain this case of the --entities test file.")
        ] = None,
        principal: Annotated[str | None, typer.Option(help='Principal id or Principal::"id".')] = None,
        action: Annotated[str | None, typer.Option(help="Action, e.g. pipeline:run.")] = None,
        resource: Annotated[str | None, typer.Option(help='Resource, e.g. Pipeline::"p1".')] = None,
        context: Annotated[
            str | None, typer.Option(help='Context as JSON, e.g. \'{"source_ip": "10.0.0.1"}\'.')
        ] = None,
        builtin: Annotated[bool, typer.Option("--builtin/--no-builtin")] = True,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Decide one request and say why: determining policies, the slice considered, errors."""
        import json

        from openfuse_policy.errors import PolicyError
        from openfuse_policy.evaluator import Authorizer

        try:
            request, store = _explain_request(entities, case, principal, action, resource, context)
            ps = _effective(policies, builtin)
            exp = Authorizer(ps).explain(request, store)
        except (PolicyError, ValueError) as e:
            raise _fail(e) from None
        typer.echo(json.dumps(exp.to_dict(), indent=2) if as_json else exp.render())

    @policy_app.command("schema")
    def schema(
        fmt: Annotated[str, typer.Option("--format", help="cedar or json")] = "cedar",
    ) -> None:
        """Print the Cedar schema generated from the OpenFuse resource model."""
        from openfuse_policy.schema import OPENFUSE_SCHEMA

        if fmt not in ("cedar", "json"):
            raise _fail(f"--format must be cedar or json, not {fmt!r}")
        typer.echo(OPENFUSE_SCHEMA.to_text() if fmt == "cedar" else OPENFUSE_SCHEMA.to_json_str())

    return policy_app


def _effective(policies: Any, builtin: bool) -> Any:
    from openfuse_policy.policy import PolicySet
    from openfuse_policy.tiers import community_policies

    custom = PolicySet.load(*policies) if policies else None
    if custom is None:
        return community_policies()
    return community_policies() + custom if builtin else custom


def _explain_request(
    entities: Any,
    case: str | None,
    principal: str | None,
    action: str | None,
    resource: str | None,
    context: str | None,
) -> tuple[Any, Any]:
    import datetime as dt
    import json

    import yaml

    from openfuse_policy.decision import Context, Request
    from openfuse_policy.entities import EntityRef, EntityStore
    from openfuse_policy.errors import PolicyTestError
    from openfuse_policy.schema import OPENFUSE_SCHEMA
    from openfuse_policy.testing import DEFAULT_TEST_NOW, load_suite

    doc = yaml.safe_load(entities.read_text(encoding="utf-8"))
    if isinstance(doc, dict) and "cases" in doc:
        suite = load_suite(entities)
        store = suite.store
        if case is not None:
            found = [c for c in suite.cases if c.name == case]
            if not found:
                raise PolicyTestError(f"no case named {case!r}", file=str(entities))
            return found[0].request, store
    else:
        items = doc.get("entities", []) if isinstance(doc, dict) else doc or []
        store = EntityStore(
            [
                OPENFUSE_SCHEMA.entity(
                    str(e["type"]), str(e["id"]), **{k: v for k, v in e.items() if k not in ("type", "id")}
                )
                for e in items
            ]
        )
    if not (principal and action and resource):
        raise ValueError("give --principal, --action and --resource (or --case NAME of a test file)")
    values: dict[str, Any] = json.loads(context) if context else {}
    now = values.get("now")
    return (
        Request(
            principal=EntityRef.parse(principal, default_type="Principal"),
            action=action,
            resource=EntityRef.parse(resource),
            context=Context(
                now=dt.datetime.fromisoformat(now.replace("Z", "+00:00")) if now else DEFAULT_TEST_NOW,
                license_features=frozenset(values.get("license_features", ())),
                source_ip=values.get("source_ip"),
                workspace=values.get("workspace"),
            ),
        ),
        store,
    )


def _license_app() -> "typer.Typer":
    from pathlib import Path
    from typing import Annotated

    import typer

    license_app = typer.Typer(no_args_is_help=True, help="The license: show, verify, issue.")
    FileOpt = Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="License file (default: $OPENFUSE_LICENSE or $OPENFUSE_LICENSE_FILE)."
        ),
    ]
    KeysOpt = Annotated[
        Path | None,
        typer.Option("--keys", help="JWKS of trusted public keys (default: the keys shipped with OpenFuse)."),
    ]

    def _state(file: Path | None, keys: Path | None) -> tuple[Any, str]:
        from openfuse_policy.errors import LicenseError
        from openfuse_policy.license import load_public_keys, read_license_token, verify_license

        try:
            token, source = read_license_token(file)
            trusted = load_public_keys(keys) if keys else None
            return verify_license(token, keys=trusted), source
        except LicenseError as e:
            raise _fail(e) from None

    @license_app.command("show")
    def show(
        file: FileOpt = None, keys: KeysOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False
    ) -> None:
        """Show the edition and features the license grants (community when there is none)."""
        import json

        from openfuse_policy.license import features_for

        state, source = _state(file, keys)
        if as_json:
            typer.echo(
                json.dumps({**state.to_dict(), "source": source, "flags": features_for(state)}, indent=2)
            )
            return
        typer.echo(f"license:  {source}")
        typer.echo(state.describe())

    @license_app.command("verify")
    def verify(file: FileOpt = None, keys: KeysOpt = None) -> None:
        """Exit 0 if the license is valid (or in its grace period), 1 if OpenFuse would run as community."""
        state, source = _state(file, keys)
        if state.is_enterprise:
            typer.echo(
                f"valid: enterprise license for {state.customer} ({source}), expires {state.expires:%Y-%m-%d}"
            )
            for w in state.warnings:
                typer.echo(f"warning: {w}", err=True)
            return
        typer.echo(f"not valid: running as community edition: {state.reason}", err=True)
        raise typer.Exit(1)

    @license_app.command("issue")
    def issue(
        key: Annotated[Path, typer.Option("--key", help="Ed25519 private key (PEM, PKCS#8).")],
        kid: Annotated[str, typer.Option("--kid", help="Key id the verifier knows the public key by.")],
        customer: Annotated[str, typer.Option("--customer", help="Customer (the sub claim).")],
        features: Annotated[str, typer.Option("--features", help="Comma-separated, e.g. abac,masking.")] = "",
        days: Annotated[int, typer.Option("--days", min=1, help="Validity in days from --not-before.")] = 365,
        seats: Annotated[int, typer.Option("--seats", min=0)] = 0,
        edition: Annotated[str, typer.Option("--edition")] = "enterprise",
        not_before: Annotated[
            str | None, typer.Option("--not-before", help="ISO date/time (default: now).")
        ] = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the token here.")] = None,
    ) -> None:
        """Sign a license token (prints it, or writes it with --out)."""
        import datetime as dt

        from openfuse_policy.errors import LicenseError
        from openfuse_policy.license import issue_license

        try:
            nbf = dt.datetime.now(dt.UTC)
            if not_before:
                nbf = dt.datetime.fromisoformat(not_before.replace("Z", "+00:00"))
                if nbf.tzinfo is None:
                    nbf = nbf.replace(tzinfo=dt.UTC)
            token = issue_license(
                key.read_bytes(),
                kid,
                customer,
                edition,  # type: ignore[arg-type]
                [f.strip() for f in features.split(",") if f.strip()],
                seats,
                nbf,
                nbf + dt.timedelta(days=days),
            )
        except (LicenseError, OSError, ValueError) as e:
            raise _fail(e) from None
        if out:
            out.write_text(token + "\n", encoding="utf-8")
            typer.echo(f"wrote {out}")
        else:
            typer.echo(token)

    return license_app
