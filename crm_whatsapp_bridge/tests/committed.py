import uuid

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import get_db_name

from ..tools.payload import split_notification
from .common import notification


class CommittedWhatsappMixin:
    """Real, separately committed transactions on a WhatsApp number of the test's own, as in production.

    For :class:`~odoo.tests.BaseCase` tests that commit (a rollback cannot show what
    another connection sees): they create uniquely named data and remove it afterwards.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = Registry(get_db_name())

    def _env(self, cr, context=None):
        """An environment on ``cr`` that never looks the registry up by name.

        Odoo's test runner holds the registry lock while post-install tests run, and
        ``api.Environment`` takes that lock (through ``Registry(dbname)``) for a cursor
        with no transaction yet: worker threads would wait for it forever.
        """
        cr.transaction = api.Transaction(self.registry)
        return api.Environment(cr, SUPERUSER_ID, context or {})

    def setUp(self):
        super().setUp()
        self.phone_number_id = f"77{uuid.uuid4().int % 10**12:012d}"
        with self.registry.cursor() as cr:
            env = self._env(cr)
            self.account_id = env["crm.whatsapp.account"].create({
                "name": "Committed line", "phone_number_id": self.phone_number_id,
                "access_token": "t"}).id
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = self._env(cr, {"active_test": False})
            messages = env["crm.whatsapp.message"].search([("account_id", "=", self.account_id)])
            leads = env["crm.lead"].search([("whatsapp_account_id", "=", self.account_id)])
            partners = messages.partner_id | leads.partner_id
            env["crm.inbox.event"].search([("channel_ref", "=", self.phone_number_id)]).unlink()
            messages.unlink()
            leads.unlink()
            partners.unlink()
            env["crm.whatsapp.account"].browse(self.account_id).unlink()

    def _store(self, messages):
        with self.registry.cursor() as cr:
            env = self._env(cr)
            payload = notification(messages, phone_number_id=self.phone_number_id)
            return env["crm.inbox.event"]._store_events("whatsapp", split_notification(payload))

