import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";

/**
 * Shows the toast the server sends when a customer writes on WhatsApp,
 * with a button that opens the lead.
 */
export const crmWhatsappNotificationService = {
    dependencies: ["action", "bus_service", "notification"],
    start(env, { action, bus_service, notification }) {
        bus_service.subscribe("crm_whatsapp_bridge/new_message", ({ title, message, lead_id }) => {
            const close = notification.add(message, {
                title,
                type: "info",
                buttons: [
                    {
                        name: _t("Open lead"),
                        primary: true,
                        onClick: () => {
                            close();
                            action.doAction({
                                type: "ir.actions.act_window",
                                res_model: "crm.lead",
                                res_id: lead_id,
                                views: [[false, "form"]],
                            });
                        },
                    },
                ],
            });
        });
        bus_service.start();
    },
};

registry.category("services").add("crm_whatsapp_notification", crmWhatsappNotificationService);
