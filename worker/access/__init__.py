"""Who may call the HTTP API (and the portal): API keys and the principal they resolve to.

``keys`` mints, lists, revokes and checks ``cat_ak_`` keys, stored only as a SHA-256;
``principal`` says which workspace a request acts for. The errors, beside the domain's
own (``outbox.errors``)::

    CatentioError
    └── AccessError                 the caller may not do this
        ├── AuthenticationFailed    no credential, or one that matches no live key
        └── PermissionDenied        a valid key without the right scope or workspace
"""
