from . import api, webhook
