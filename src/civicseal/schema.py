"""The whole schema: importing this module registers every domain package's models on one metadata.

It lives above every domain package because ``store`` imports none: :func:`civicseal.homes.init_home`
hands this metadata to the migrations (``store.migrate.upgrade``), which also need it to autogenerate.
"""

from civicseal.audit import models as _audit  # noqa: F401
from civicseal.contact import models as _contact  # noqa: F401
from civicseal.contractors import models as _contractors  # noqa: F401
from civicseal.custody import models as _custody  # noqa: F401
from civicseal.incident import models as _incident  # noqa: F401
from civicseal.keys import models as _keys  # noqa: F401
from civicseal.ledger import models as _ledger  # noqa: F401
from civicseal.payments import models as _payments  # noqa: F401
from civicseal.programme import models as _programme  # noqa: F401
from civicseal.register import models as _register  # noqa: F401
from civicseal.seal import models as _seal  # noqa: F401
from civicseal.store.base import Base

metadata = Base.metadata
