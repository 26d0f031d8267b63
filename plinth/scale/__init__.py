"""Scale-out on Ray Serve: engine replicas behind one HTTP front, adapter- and session-affine routing.

Only ``plinth serve --ray`` imports this package (Ray is the optional ``ray`` extra); the single
process never does. :func:`serve_on_ray` deploys and serves; :func:`application` builds the Serve
application for tests and custom drivers.
"""

from plinth.scale.deploy import APP_NAME, application, serve_on_ray

__all__ = ["APP_NAME", "application", "serve_on_ray"]
