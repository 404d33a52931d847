"""The upstream surface: today's `horde_model_reference` (8.6.2) names, as thin façades over this package.

One module per upstream module it mirrors (each docstring names it): `meta_consts`,
`model_reference_records` (with `_pydantic_style` and `_record_mixin`: the pydantic-style methods
and download properties records inherit),
`image_baseline`, `path_consts`, `text_backend_names`, `settings`. The upstream module paths at
the package root (`horde_model_reference.meta_consts`, ...) re-export from here. Importing this
package imports nothing: each module is loaded when asked for. The intentional differences from
upstream are listed in docs/consumers.md.
"""
