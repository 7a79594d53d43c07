"""The prediction service: the pipeline's model behind a versioned JSON API and a web page.

Importing the package loads nothing: the app factory is ``rentprice.service.app.create_app``, the
settings ``rentprice.service.config``, and ``python -m rentprice.service.serve`` runs it all behind
nginx (docs/service.md).
"""
