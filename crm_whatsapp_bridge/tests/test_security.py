from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, new_test_user, tagged

from .common import WhatsappTestMixin, notification, text_message


@tagged("post_install", "-at_install")
class TestWhatsappSecurity(WhatsappTestMixin, TransactionCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_whatsapp()
        cls.manager = new_test_user(cls.env, login="wa_manager", groups="sales_team.group_sale_manager")

    def _lead_with_message(self, user, wamid):
        lead = self.env["crm.lead"].create({"name": f"Lead of {user.name}", "user_id": user.id})
        self.env["crm.whatsapp.message"].create({
            "wamid": wamid, "direction": "in", "account_id": self.account.id, "lead_id": lead.id,
            "wa_id": "15550101234", "body": "hi"})
        return lead

    def test_access_token_and_app_secret_are_admin_only(self):
        for user in (self.salesperson, self.manager):
            with self.assertRaises(AccessError):
                self.account.with_user(user).read(["access_token"])
        self.assertEqual(self.account.with_user(self.admin).read(["access_token"])[0]["access_token"],
                         "EAAG-test-token")
        settings_field = self.env["res.config.settings"]._fields["crm_whatsapp_meta_app_secret"]
        self.assertEqual(settings_field.groups, "base.group_system")
        # A salesperson can still see which numbers exist (for filters and lead forms).
        self.assertEqual(self.account.with_user(self.salesperson).read(["name"])[0]["name"], "Riyadh line")

    def test_inbox_is_for_admins(self):
        self.store(notification([text_message("15550101234", "hello")]))
        event = self.env["crm.inbox.event"].search([])
        with self.assertRaises(AccessError):
            event.with_user(self.salesperson).read(["payload"])
        # Raw payloads hold customers' personal data: sales managers work on leads, not on the inbox.
        with self.assertRaises(AccessError):
            event.with_user(self.manager).read(["state"])
        with self.assertRaises(AccessError):
            event.with_user(self.manager).action_requeue()
        event.with_user(self.admin).action_requeue()
        self.assertEqual(event.state, "pending")

    def test_salesperson_sees_messages_of_own_leads_only(self):
        own = self._lead_with_message(self.salesperson, "wamid.OWN")
        self._lead_with_message(self.other_salesperson, "wamid.OTHER")
        visible = self.env["crm.whatsapp.message"].with_user(self.salesperson).search([])
        self.assertEqual(visible.mapped("wamid"), ["wamid.OWN"])
        self.assertEqual(visible.lead_id, own)
        everything = self.env["crm.whatsapp.message"].with_user(self.manager).search([])
        self.assertEqual(sorted(everything.mapped("wamid")), ["wamid.OTHER", "wamid.OWN"])

    def test_salesperson_cannot_change_numbers_or_messages(self):
        with self.assertRaises(AccessError):
            self.account.with_user(self.salesperson).write({"name": "mine now"})
        message = self._lead_with_message(self.salesperson, "wamid.RO").whatsapp_message_ids
        with self.assertRaises(AccessError):
            message.with_user(self.salesperson).write({"body": "edited"})
