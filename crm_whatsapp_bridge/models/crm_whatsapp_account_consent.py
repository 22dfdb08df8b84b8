from odoo import fields, models

DEFAULT_OPT_OUT = ("STOP, STOP ALL, STOP PROMOTIONS, UNSUBSCRIBE, OPT OUT, CANCEL, END, QUIT, "
                   "إلغاء, إلغاء الاشتراك, توقف, إيقاف, أوقف, لا أريد")
DEFAULT_OPT_IN = "START, SUBSCRIBE, UNSTOP, OPT IN, اشتراك, اشترك, ابدأ"
# Customers write in either language: the default confirmations carry both.
DEFAULT_OPT_OUT_REPLY = ("You will no longer receive marketing messages from us. Reply START to receive them again.\n"
                         "لن تصلك رسائلنا التسويقية بعد الآن. أرسل START أو اشتراك لتلقيها مجددًا.")
DEFAULT_OPT_IN_REPLY = ("You will receive our offers and news again. Reply STOP at any time to stop.\n"
                        "ستصلك عروضنا وأخبارنا مجددًا. أرسل STOP أو إلغاء في أي وقت للإيقاف.")


class CrmWhatsappAccount(models.Model):
    _inherit = "crm.whatsapp.account"

    opt_out_keywords = fields.Text(
        "Opt-out Keywords", default=DEFAULT_OPT_OUT,
        help="A message that is only one of these words (separated by commas) stops marketing messages. "
             "Case, accents, Arabic diacritics and punctuation are ignored.")
    opt_in_keywords = fields.Text(
        "Opt-in Keywords", default=DEFAULT_OPT_IN,
        help="A message that is only one of these words allows marketing messages again.")
    opt_out_reply = fields.Text(
        "Opt-out Confirmation", default=DEFAULT_OPT_OUT_REPLY,
        help="Sent once, inside the 24-hour window, when a customer opts out. Leave empty to send nothing.")
    opt_in_reply = fields.Text(
        "Opt-in Confirmation", default=DEFAULT_OPT_IN_REPLY,
        help="Sent once, inside the 24-hour window, when a customer opts in. Leave empty to send nothing.")
    consent_ids = fields.One2many("crm.whatsapp.consent", "account_id", "Marketing Consents")
