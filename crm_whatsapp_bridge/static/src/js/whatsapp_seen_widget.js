/** @odoo-module **/

import { Component, onMounted, onWillUpdateProps, xml } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";

/**
 * Invisible widget of the lead form: when the salesperson opens a lead with unread
 * WhatsApp messages, tell the server, which clears the kanban badge.
 */
export class WhatsappSeen extends Component {
    static template = xml``;
    static props = { ...standardWidgetProps };

    setup() {
        this.orm = useService("orm");
        this.clearedFor = null;
        onMounted(() => this.markSeen(this.props.record));
        onWillUpdateProps((nextProps) => this.markSeen(nextProps.record));
    }

    async markSeen(record) {
        if (!record.resId || !record.data.whatsapp_unread_count || this.clearedFor === record.resId) {
            return;
        }
        this.clearedFor = record.resId;
        await this.orm.call("crm.lead", "action_whatsapp_mark_seen", [[record.resId]]);
    }
}

registry.category("view_widgets").add("crm_whatsapp_seen", {
    component: WhatsappSeen,
    fieldDependencies: [{ name: "whatsapp_unread_count", type: "integer" }],
});
