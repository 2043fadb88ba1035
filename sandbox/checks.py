"""Start-up check of the sandbox: every vendor document it checks requests against is in the repository and readable."""
from django.core.checks import Error, register

from .openapi import VISMA_SPEC
from .openapi_index import VENDOR_SPECS_RESTORE, vendor_spec_path, vendor_spec_shown
from .paypal_openapi import PAYPAL_SPECS
from .stripe_openapi import STRIPE_SPEC

# A clone made with Git LFS filters would hold this pointer instead of the document.
LFS_POINTER_START = b"version https://git-lfs"


def vendor_specs_read_by_sandbox() -> list[str]:
    """The documents the emulators load on first use, relative to sandbox/vendor_specs/."""
    return [VISMA_SPEC, STRIPE_SPEC, *(relative for relative, _title, _prefix in PAYPAL_SPECS.values())]


def vendor_spec_problem(relative: str) -> str | None:
    """Why the document cannot serve the sandbox (missing, unreadable, empty, a pointer), or None. Cheap: the
    document itself is parsed on first use, where a broken one fails with its name too."""
    path = vendor_spec_path(relative)
    try:
        with path.open("rb") as spec_file:
            start = spec_file.read(len(LFS_POINTER_START))
    except OSError as error:
        return f"{vendor_spec_shown(path)} cannot be read ({error.strerror or error})"
    if not start:
        return f"{vendor_spec_shown(path)} is empty"
    if start == LFS_POINTER_START:
        return f"{vendor_spec_shown(path)} is a Git LFS pointer, not the document"
    return None


@register("sandbox")
def vendor_specs_check(app_configs=None, **kwargs) -> list[Error]:
    return [
        Error(problem, hint=VENDOR_SPECS_RESTORE, id="sandbox.E001")
        for problem in map(vendor_spec_problem, vendor_specs_read_by_sandbox())
        if problem is not None
    ]
