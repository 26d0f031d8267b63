"""Build and run Plinth as a Ray Serve application (``plinth serve --ray``).

Two deployments: ``PlinthIngress`` (HTTP in, routing keys out; light) and ``PlinthEngine`` (the
replicas that hold models, autoscaled by the ``[ray]`` settings and routed by
:class:`~plinth.scale.router.AffinityRouter`)::

    ray.init()                                    # or ray.init(address="auto") on a cluster
    serve.run(application(settings), route_prefix="/")

On a managed cluster Serve builds it from a config file instead (``deploy/rayservice.yaml``), through
:func:`build`.

Replicas may run on other machines: every path in the settings is made absolute here, and state they
must share lives where all of them reach it (the control plane's ``database_url``, ``data_dir`` on a
shared filesystem).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray.serve import Application
from ray.serve.config import RequestRouterConfig

from plinth.config import RaySettings, Settings
from plinth.control import open_control_plane
from plinth.scale.ingress import Ingress
from plinth.scale.replica import EngineReplica

__all__ = ["APP_NAME", "application", "build", "replica_options", "serve_on_ray"]

APP_NAME = "plinth"
ROUTER = "plinth.scale.router.AffinityRouter"


def application(settings: Settings) -> Application:
    """The Serve application for ``settings`` (not yet running). Opens the control plane once first,
    so its migrations run here and not in replicas racing each other."""
    assert settings.database_url is not None
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    open_control_plane(settings.database_url).close()
    ray_settings = settings.ray
    engine = serve.deployment(name="PlinthEngine", **replica_options(ray_settings))(EngineReplica)
    ingress = serve.deployment(
        name="PlinthIngress",
        num_replicas=ray_settings.ingress_replicas,
        ray_actor_options={"num_cpus": 0.1},  # it only forwards
    )(Ingress)
    return ingress.bind(engine.bind(_portable(settings)), ray_settings.max_attempts)


def replica_options(ray_settings: RaySettings) -> dict[str, Any]:
    """Serve's deployment options for the engine replicas: resources, back-pressure, the router, and
    a fixed count or autoscaling bounds."""
    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": ray_settings.replica_cpus, "num_gpus": ray_settings.replica_gpus},
        "max_ongoing_requests": ray_settings.max_ongoing_requests,
        "request_router_config": RequestRouterConfig(request_router_class=ROUTER),  # type: ignore[arg-type]
        "health_check_period_s": 5,
    }
    if ray_settings.min_replicas == ray_settings.max_replicas:
        options["num_replicas"] = ray_settings.max_replicas
    else:
        options["autoscaling_config"] = {
            "min_replicas": ray_settings.min_replicas,
            "max_replicas": ray_settings.max_replicas,
            "target_ongoing_requests": ray_settings.target_ongoing_requests,
            "upscale_delay_s": ray_settings.upscale_delay_s,
            "downscale_delay_s": ray_settings.downscale_delay_s,
        }
    return options


def build(args: dict[str, Any]) -> Application:
    """Serve's application builder (``import_path: plinth.scale.deploy:build`` in a Serve config or a
    KubeRay ``RayService``): ``args`` are Settings fields, over ``PLINTH_*`` variables and the toml."""
    return application(Settings(**args))


def serve_on_ray(settings: Settings) -> None:
    """Deploy on the cluster at ``ray.address`` (a local one when unset) and serve until interrupted."""
    ray.init(address=settings.ray.address)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(application(settings), name=APP_NAME, route_prefix="/", blocking=True)


def _portable(settings: Settings) -> dict[str, Any]:
    """``settings`` as JSON data a replica rebuilds: directories made absolute, and no config file (its
    values are already in here). Models stay as given, since a model's name is what it was given as;
    a local cluster's workers start in the driver's working directory, so relative ones still load."""
    data = settings.model_dump(mode="json", exclude={"config"})
    data["data_dir"] = str(Path(settings.data_dir).resolve())
    data["adapters"] = [str(Path(d).resolve()) for d in settings.adapters]
    if settings.database_url is not None and settings.database_url.startswith("sqlite:///"):
        data["database_url"] = f"sqlite:///{Path(settings.database_url.removeprefix('sqlite:///')).resolve()}"
    return data
