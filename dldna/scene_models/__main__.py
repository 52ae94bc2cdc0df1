"""``python -m dldna.scene_models``: train the scene models (see :func:`dldna.scene_models.main`)."""

from dldna.scene_models import main

raise SystemExit(main())
