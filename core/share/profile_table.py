"""DICOM PS3.15 Annex E, Table E.1-1, as data: what the Basic Application Level
Confidentiality Profile does to each attribute, and what its options change.

Transcribed from the standard's table (one row per attribute: tag, keyword,
the Basic Profile action, then the option columns that differ).  Actions:
``X`` remove, ``Z`` empty (or a dummy), ``D`` dummy value, ``K`` keep, ``C``
clean, ``U`` replace by a keyed pseudonym UID; compound actions (``X/Z``,
``X/D``, ``X/Z/D``, ``Z/D``, ``X/Z/U*``) are resolved by :func:`resolve`.
Option columns: ``uid`` Retain UIDs, ``dev`` Retain Device Identity,
``inst`` Retain Institution Identity, ``pat`` Retain Patient Characteristics,
``full`` Retain Longitudinal Temporal Information with Full Dates, ``mod``
the same with Modified Dates, ``desc`` Clean Descriptors, ``struct`` Clean
Structured Content, ``graph`` Clean Graphics.  Repeating groups (overlays
60xx, curves 50xx) are rows with a group mask.  :data:`OPTIONS` names the
options this package implements with their CID 7050 codes (Clean Recognizable
Visual Features, 113102, has no column: it acts on whole series, see
:mod:`.visual_features`); :func:`check_options` refuses unknown names and
options that exclude each other (:data:`EXCLUSIVE`).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import PocketPacsError

#: option name -> (column of the table, CID 7050 code value, code meaning)
OPTIONS: dict[str, tuple[str, str, str]] = {
    "modified-dates": ("mod", "113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "clean-descriptors": ("desc", "113105", "Clean Descriptors Option"),
    "patient-characteristics": ("pat", "113108", "Retain Patient Characteristics Option"),
    "device-identity": ("dev", "113109", "Retain Device Identity Option"),
    "safe-private": ("priv", "113111", "Retain Safe Private Option"),
    "retain-uids": ("uid", "113110", "Retain UIDs Option"),
    "retain-institution": ("inst", "113112", "Retain Institution Identity Option"),
    "clean-structured-content": ("struct", "113104", "Clean Structured Content Option"),
    "clean-graphics": ("graph", "113103", "Clean Graphics Option"),
    "full-dates": ("full", "113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "clean-visual-features": ("visual", "113102", "Clean Recognizable Visual Features Option"),
}
#: Options that exclude each other (PS3.15 E.3.6: dates are kept as they are, or shifted).
EXCLUSIVE: tuple[tuple[str, str], ...] = (("full-dates", "modified-dates"),)
#: Recorded on the instances whose pixels were blanked by a rule of the settings file (CID 7050).
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")
#: The profile itself (CID 7050).
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")

# tag  keyword  basic  option=action ...   (one attribute per line, as in Table E.1-1)
_TABLE = """
0008,0050 AccessionNumber Z
0018,4000 AcquisitionComments X desc=C
0040,0555 AcquisitionContextSequence X/Z struct=C
0008,0022 AcquisitionDate X/Z full=K mod=C
0008,002A AcquisitionDateTime X/Z/D full=K mod=C
0018,1400 AcquisitionDeviceProcessingDescription X/D dev=K desc=C
0018,9424 AcquisitionProtocolDescription X desc=C
0008,0032 AcquisitionTime X/Z full=K mod=C
0040,4035 ActualHumanPerformersSequence X
0010,21B0 AdditionalPatientHistory X desc=C
0038,0010 AdmissionID X
0038,0020 AdmittingDate X full=K mod=C
0008,1084 AdmittingDiagnosesCodeSequence X desc=C
0008,1080 AdmittingDiagnosesDescription X desc=C
0038,0021 AdmittingTime X full=K mod=C
0010,2110 Allergies X desc=C
4000,0010 Arbitrary X
0040,A078 AuthorObserverSequence X
0010,1081 BranchOfService X
0018,1007 CassetteID X dev=K
0040,0280 CommentsOnThePerformedProcedureStep X desc=C
0020,9161 ConcatenationUID U uid=K
0040,3001 ConfidentialityConstraintOnPatientDataDescription X
0070,0084 ContentCreatorName Z
0070,0086 ContentCreatorIdentificationCodeSequence X
0008,0023 ContentDate Z/D full=K mod=C
0040,A730 ContentSequence X struct=C
0008,0033 ContentTime Z/D full=K mod=C
0008,010D ContextGroupExtensionCreatorUID U uid=K
0018,0010 ContrastBolusAgent Z/D desc=C
0018,A003 ContributionDescription X desc=C
0010,2150 CountryOfResidence X
0008,9123 CreatorVersionUID U uid=K
0038,0300 CurrentPatientLocation X
0008,0025 CurveDate X full=K mod=C
0008,0035 CurveTime X full=K mod=C
0040,A07C CustodialOrganizationSequence X
FFFC,FFFC DataSetTrailingPadding X
0018,1200 DateOfLastCalibration X dev=K full=K mod=C
0018,700C DateOfLastDetectorCalibration X dev=K full=K mod=C
0018,1012 DateOfSecondaryCapture X full=K mod=C
0040,A121 Date X full=K mod=C
0040,A120 DateTime X full=K mod=C
0008,2111 DerivationDescription X desc=C
0018,700A DetectorID X dev=K
0050,0020 DeviceDescription X dev=K desc=C
0018,1000 DeviceSerialNumber X/Z/D dev=K
0018,1002 DeviceUID U uid=K dev=K
0400,0100 DigitalSignatureUID X
FFFA,FFFA DigitalSignaturesSequence X
0020,9164 DimensionOrganizationUID U uid=K
0038,0040 DischargeDiagnosisDescription X desc=C
4008,011A DistributionAddress X
4008,0119 DistributionName X
300A,0013 DoseReferenceUID U uid=K
0400,0500 EncryptedAttributesSequence X
0018,9517 EndAcquisitionDateTime X/D full=K mod=C
0010,2160 EthnicGroup X pat=K
0008,1195 TransactionUID U uid=K
0070,031A FiducialUID U uid=K
0040,2017 FillerOrderNumberImagingServiceRequest Z
0018,9074 FrameAcquisitionDateTime X/D full=K mod=C
0020,9158 FrameComments X desc=C
0020,0052 FrameOfReferenceUID U uid=K
0018,9151 FrameReferenceDateTime X/D full=K mod=C
0018,1008 GantryID X dev=K
0018,1005 GeneratorID X dev=K
0070,0001 GraphicAnnotationSequence D graph=C
0040,4037 HumanPerformerName X
0040,4036 HumanPerformerOrganization X
0088,0200 IconImageSequence X
0008,4000 IdentifyingComments X desc=C
0020,4000 ImageComments X desc=C
0028,4000 ImagePresentationComments X
0040,2400 ImagingServiceRequestComments X desc=C
4008,0300 Impressions X desc=C
0008,0015 InstanceCoercionDateTime X full=K mod=C
0008,0012 InstanceCreationDate X/D full=K mod=C
0008,0013 InstanceCreationTime X/Z/D full=K mod=C
0008,0014 InstanceCreatorUID U uid=K
0008,0081 InstitutionAddress X inst=K
0008,0082 InstitutionCodeSequence X/Z/D inst=K
0008,0080 InstitutionName X/Z/D inst=K
0008,1040 InstitutionalDepartmentName X inst=K
0008,1041 InstitutionalDepartmentTypeCodeSequence X inst=K
0010,1050 InsurancePlanIdentification X
0040,1011 IntendedRecipientsOfResultsIdentificationSequence X
4008,0111 InterpretationApproverSequence X
4008,010C InterpretationAuthor X
4008,0115 InterpretationDiagnosisDescription X desc=C
4008,0202 InterpretationIDIssuer X
4008,0102 InterpretationRecorder X
4008,010B InterpretationText X desc=C
4008,010A InterpretationTranscriber X
0008,3010 IrradiationEventUID U uid=K
0038,0011 IssuerOfAdmissionID X
0010,0021 IssuerOfPatientID X
0038,0061 IssuerOfServiceEpisodeID X
0028,1214 LargePaletteColorLookupTableUID U uid=K
0010,21D0 LastMenstrualDate X full=K mod=C
0400,0404 MAC X
0002,0003 MediaStorageSOPInstanceUID U uid=K
0010,2000 MedicalAlerts X desc=C
0010,1090 MedicalRecordLocator X
0010,1080 MilitaryRank X
0400,0550 ModifiedAttributesSequence X
0020,3406 ModifiedImageDescription X desc=C
0020,3401 ModifyingDeviceID X dev=K
0008,1060 NameOfPhysiciansReadingStudy X
0040,1010 NamesOfIntendedRecipientsOfResults X
0040,A032 ObservationDateTime X/D full=K mod=C
0010,2180 Occupation X desc=C
0008,1072 OperatorIdentificationSequence X
0008,1070 OperatorsName X/Z/D
0040,2010 OrderCallbackPhoneNumber X
0040,2008 OrderEnteredBy X
0040,2009 OrderEntererLocation X
0400,0561 OriginalAttributesSequence X
0010,1000 OtherPatientIDs X
0010,1002 OtherPatientIDsSequence X
0010,1001 OtherPatientNames X
0008,0024 OverlayDate X full=K mod=C
0008,0034 OverlayTime X full=K mod=C
0040,A07A ParticipantSequence X
0010,1040 PatientAddress X
0010,1010 PatientAge X pat=K
0010,0030 PatientBirthDate Z
0010,1005 PatientBirthName X
0010,0032 PatientBirthTime X
0010,4000 PatientComments X desc=C
0010,0020 PatientID Z
0038,0400 PatientInstitutionResidence X
0010,0050 PatientInsurancePlanCodeSequence X
0010,1060 PatientMotherBirthName X
0010,0010 PatientName Z
0010,0101 PatientPrimaryLanguageCodeSequence X
0010,0102 PatientPrimaryLanguageModifierCodeSequence X
0010,21F0 PatientReligiousPreference X
0010,0040 PatientSex Z pat=K
0010,2203 PatientSexNeutered X/Z pat=K
0010,1020 PatientSize X pat=K
0038,0500 PatientState X desc=C
0010,2154 PatientTelephoneNumbers X
0040,1004 PatientTransportArrangements X
0010,1030 PatientWeight X pat=K
0040,0243 PerformedLocation X
0040,0254 PerformedProcedureStepDescription X desc=C
0040,0250 PerformedProcedureStepEndDate X full=K mod=C
0040,4051 PerformedProcedureStepEndDateTime X full=K mod=C
0040,0251 PerformedProcedureStepEndTime X full=K mod=C
0040,0253 PerformedProcedureStepID X
0040,0244 PerformedProcedureStepStartDate X full=K mod=C
0040,4050 PerformedProcedureStepStartDateTime X full=K mod=C
0040,0245 PerformedProcedureStepStartTime X full=K mod=C
0040,0241 PerformedStationAETitle X dev=K
0040,4030 PerformedStationGeographicLocationCodeSequence X dev=K
0040,0242 PerformedStationName X dev=K
0040,4028 PerformedStationNameCodeSequence X dev=K
0008,1052 PerformingPhysicianIdentificationSequence X
0008,1050 PerformingPhysicianName X
0040,1102 PersonAddress X
0040,1101 PersonIdentificationCodeSequence D
0040,A123 PersonName D
0040,1103 PersonTelephoneNumbers X
4008,0114 PhysicianApprovingInterpretation X
0008,1048 PhysiciansOfRecord X
0008,1049 PhysiciansOfRecordIdentificationSequence X
0008,1062 PhysiciansReadingStudyIdentificationSequence X
0040,2016 PlacerOrderNumberImagingServiceRequest Z
0018,1004 PlateID X dev=K
0040,0012 PreMedication X desc=C
0010,21C0 PregnancyStatus X pat=K
0018,1030 ProtocolName X/D desc=C
0018,1078 RadiopharmaceuticalStartDateTime X full=K mod=C
0018,1072 RadiopharmaceuticalStartTime X full=K mod=C
0018,1079 RadiopharmaceuticalStopDateTime X full=K mod=C
0018,1073 RadiopharmaceuticalStopTime X full=K mod=C
0040,2001 ReasonForTheImagingServiceRequest X desc=C
0032,1030 ReasonForStudy X desc=C
0040,A13A ReferencedDateTime X full=K mod=C
0400,0402 ReferencedDigitalSignatureSequence X
3006,0024 ReferencedFrameOfReferenceUID U uid=K
0040,4023 ReferencedGeneralPurposeScheduledProcedureStepTransactionUID U uid=K
0008,1140 ReferencedImageSequence X/Z/U* uid=K
0038,0004 ReferencedPatientAliasSequence X
0010,1100 ReferencedPatientPhotoSequence X
0008,1120 ReferencedPatientSequence X
0008,1111 ReferencedPerformedProcedureStepSequence X/Z/D
0400,0403 ReferencedSOPInstanceMACSequence X
0008,1155 ReferencedSOPInstanceUID U uid=K
0004,1511 ReferencedSOPInstanceUIDInFile U uid=K
0008,1110 ReferencedStudySequence X/Z
0008,0092 ReferringPhysicianAddress X
0008,0096 ReferringPhysicianIdentificationSequence X
0008,0090 ReferringPhysicianName Z
0008,0094 ReferringPhysicianTelephoneNumbers X
0010,2152 RegionOfResidence X
3006,00C2 RelatedFrameOfReferenceUID U uid=K
0040,0275 RequestAttributesSequence X
0032,1070 RequestedContrastAgent X desc=C
0040,1400 RequestedProcedureComments X desc=C
0032,1060 RequestedProcedureDescription X/Z desc=C
0040,1001 RequestedProcedureID X
0040,1005 RequestedProcedureLocation X
0000,1001 RequestedSOPInstanceUID U uid=K
0032,1032 RequestingPhysician X
0032,1033 RequestingService X
0032,1034 RequestingServiceCodeSequence X
0010,2299 ResponsibleOrganization X
0010,2297 ResponsiblePerson X
4008,4000 ResultsComments X desc=C
4008,0118 ResultsDistributionListSequence X
4008,0042 ResultsIDIssuer X
300E,0008 ReviewerName X/Z
0040,4034 ScheduledHumanPerformersSequence X
0038,001E ScheduledPatientInstitutionResidence X
0040,000B ScheduledPerformingPhysicianIdentificationSequence X
0040,0006 ScheduledPerformingPhysicianName X
0040,0004 ScheduledProcedureStepEndDate X full=K mod=C
0040,0005 ScheduledProcedureStepEndTime X full=K mod=C
0040,0007 ScheduledProcedureStepDescription X desc=C
0040,0011 ScheduledProcedureStepLocation X
0040,0002 ScheduledProcedureStepStartDate X full=K mod=C
0040,0003 ScheduledProcedureStepStartTime X full=K mod=C
0040,0001 ScheduledStationAETitle X dev=K
0040,4027 ScheduledStationGeographicLocationCodeSequence X dev=K
0040,0010 ScheduledStationName X dev=K
0040,4025 ScheduledStationNameCodeSequence X dev=K
0032,1020 ScheduledStudyLocation X
0032,1021 ScheduledStudyLocationAETitle X
0018,1010 SecondaryCaptureDeviceID X dev=K
0018,1016 SecondaryCaptureDeviceManufacturer X dev=K
0018,1018 SecondaryCaptureDeviceManufacturerModelName X dev=K
0018,1019 SecondaryCaptureDeviceSoftwareVersions X dev=K
0008,0021 SeriesDate X full=K mod=C
0008,103E SeriesDescription X desc=C
0020,000E SeriesInstanceUID U uid=K
0008,0031 SeriesTime X full=K mod=C
0038,0062 ServiceEpisodeDescription X desc=C
0038,0060 ServiceEpisodeID X
0010,21A0 SmokingStatus X pat=K
0018,1020 SoftwareVersions X dev=K
0008,0018 SOPInstanceUID U uid=K
0008,2112 SourceImageSequence X/Z/U* uid=K
0038,0050 SpecialNeeds X desc=C
0040,050A SpecimenAccessionNumber X
0040,0554 SpecimenUID U uid=K
0018,9516 StartAcquisitionDateTime X/D full=K mod=C
0008,1010 StationName X/Z/D dev=K
0088,0140 StorageMediaFileSetUID U uid=K
0032,4000 StudyComments X desc=C
0008,0020 StudyDate Z full=K mod=C
0008,1030 StudyDescription X desc=C
0020,0010 StudyID Z
0032,0012 StudyIDIssuer X
0020,000D StudyInstanceUID U uid=K
0008,0030 StudyTime Z full=K mod=C
0020,0200 SynchronizationFrameOfReferenceUID U uid=K
0040,DB0D TemplateExtensionCreatorUID U uid=K
0040,DB0C TemplateExtensionOrganizationUID U uid=K
4000,4000 TextComments X desc=C
2030,0020 TextString X
0040,A122 Time X full=K mod=C
0018,1201 TimeOfLastCalibration X dev=K full=K mod=C
0018,1014 TimeOfSecondaryCapture X full=K mod=C
0008,0201 TimezoneOffsetFromUTC X full=K mod=C
0088,0910 TopicAuthor X
0088,0912 TopicKeywords X
0088,0906 TopicSubject X
0088,0904 TopicTitle X
0040,A124 UID U uid=K
0040,A030 VerificationDateTime D full=K mod=C
0040,A088 VerifyingObserverIdentificationCodeSequence Z
0040,A075 VerifyingObserverName D
0040,A073 VerifyingObserverSequence D
0040,A027 VerifyingOrganization X
0038,4000 VisitComments X desc=C
0012,0010 ClinicalTrialSponsorName D
0012,0020 ClinicalTrialProtocolID D
0012,0021 ClinicalTrialProtocolName Z
0012,0030 ClinicalTrialSiteID Z
0012,0031 ClinicalTrialSiteName Z
0012,0040 ClinicalTrialSubjectID D
0012,0042 ClinicalTrialSubjectReadingID D
0012,0050 ClinicalTrialTimePointID Z
0012,0051 ClinicalTrialTimePointDescription X
0012,0060 ClinicalTrialCoordinatingCenterName Z
0012,0071 ClinicalTrialSeriesID X
0012,0072 ClinicalTrialSeriesDescription X
0012,0081 ClinicalTrialProtocolEthicsCommitteeName D
0012,0082 ClinicalTrialProtocolEthicsCommitteeApprovalNumber X
0012,0083 ConsentForClinicalTrialUseSequence X
0008,0017 AcquisitionUID U uid=K
0008,0058 FailedSOPInstanceUIDList U uid=K
0040,A171 ObservationUID U uid=K
0028,1199 PaletteColorLookupTableUID U uid=K
0008,0019 PyramidUID U uid=K
0018,2042 TargetUID U uid=K
0062,0021 TrackingUID U uid=K
300A,0700 TreatmentSessionUID U uid=K
0064,0003 SourceFrameOfReferenceUID U uid=K
0070,1101 PresentationDisplayCollectionUID U uid=K
0070,1102 PresentationSequenceCollectionUID U uid=K
0008,009C ConsultingPhysicianName Z
0008,009D ConsultingPhysicianIdentificationSequence X
0018,1203 CalibrationDateTime Z full=K mod=C
3006,0008 StructureSetDate Z full=K mod=C
3006,0009 StructureSetTime Z full=K mod=C
3006,0026 ROIName Z
3006,00A6 ROIInterpreter Z
300E,0004 ReviewDate Z full=K mod=C
300E,0005 ReviewTime Z full=K mod=C
0040,0512 ContainerIdentifier D
0040,0551 SpecimenIdentifier D
3006,0002 StructureSetLabel D
300A,0002 RTPlanLabel D
300A,0006 RTPlanDate X/D full=K mod=C
300A,0007 RTPlanTime X/D full=K mod=C
3008,0250 TreatmentDate X/D full=K mod=C
3008,0251 TreatmentTime X/D full=K mod=C
3008,0054 FirstTreatmentDate X/D full=K mod=C
3008,0056 MostRecentTreatmentDate X/D full=K mod=C
0018,700E TimeOfLastDetectorCalibration X/D dev=K full=K mod=C
300A,00B2 TreatmentMachineName X/Z dev=K
3008,0105 SourceSerialNumber X/Z dev=K
0018,1202 DateTimeOfLastCalibration X dev=K full=K mod=C
0018,1204 DateOfManufacture X dev=K full=K mod=C
0018,1205 DateOfInstallation X dev=K full=K mod=C
0018,1009 UniqueDeviceIdentifier X dev=K
0018,100A UDISequence X dev=K
0018,5011 TransducerIdentificationSequence X dev=K
0008,0054 RetrieveAETitle X
0008,0055 StationAETitle X dev=K
0008,1000 NetworkID X
0038,0030 DischargeDate X full=K mod=C
0038,0032 DischargeTime X full=K mod=C
0038,001A ScheduledAdmissionDate X full=K mod=C
0038,001B ScheduledAdmissionTime X full=K mod=C
0038,001C ScheduledDischargeDate X full=K mod=C
0038,001D ScheduledDischargeTime X full=K mod=C
0038,0014 IssuerOfAdmissionIDSequence X
0038,0064 IssuerOfServiceEpisodeIDSequence X
0040,2004 IssueDateOfImagingServiceRequest X full=K mod=C
0040,2005 IssueTimeOfImagingServiceRequest X full=K mod=C
0040,2011 OrderCallbackTelecomInformation X
0040,1002 ReasonForTheRequestedProcedure X desc=C
0040,100A ReasonForRequestedProcedureCodeSequence X desc=C
0032,1066 ReasonForVisit X desc=C
0032,1067 ReasonForVisitCodeSequence X desc=C
0040,0009 ScheduledProcedureStepID X
0040,4005 ScheduledProcedureStepStartDateTime X full=K mod=C
0032,1000 ScheduledStudyStartDate X full=K mod=C
0032,1001 ScheduledStudyStartTime X full=K mod=C
0032,1010 ScheduledStudyStopDate X full=K mod=C
0032,1011 ScheduledStudyStopTime X full=K mod=C
0032,1040 StudyArrivalDate X full=K mod=C
0032,1041 StudyArrivalTime X full=K mod=C
0032,1050 StudyCompletionDate X full=K mod=C
0032,1051 StudyCompletionTime X full=K mod=C
0032,0032 StudyVerifiedDate X full=K mod=C
0032,0033 StudyVerifiedTime X full=K mod=C
0032,0034 StudyReadDate X full=K mod=C
0032,0035 StudyReadTime X full=K mod=C
0020,3403 ModifiedImageDate X full=K mod=C
0020,3405 ModifiedImageTime X full=K mod=C
0040,A033 ObservationStartDateTime X full=K mod=C
0070,0082 PresentationCreationDate X full=K mod=C
0070,0083 PresentationCreationTime X full=K mod=C
0018,9937 RequestedSeriesDescription X desc=C
0010,2155 PatientTelecomInformation X
0040,1104 PersonTelecomInformation X
2100,0070 Originator X
0040,A307 CurrentObserverTrial X
0040,0310 CommentsOnRadiationDose X desc=C
0040,051A ContainerDescription X
0040,0600 SpecimenShortDescription X desc=C
0040,0602 SpecimenDetailedDescription X desc=C
0040,06FA SlideIdentifier X
3006,0004 StructureSetName X desc=C
3006,0006 StructureSetDescription X desc=C
3006,0028 ROIDescription X desc=C
3006,0038 ROIGenerationDescription X desc=C
3006,0085 ROIObservationLabel X desc=C
3006,0088 ROIObservationDescription X desc=C
300A,0003 RTPlanName X desc=C
300A,0004 RTPlanDescription X desc=C
300A,000E PrescriptionDescription X desc=C
300A,000B TreatmentSites X desc=C
300A,0016 DoseReferenceDescription X desc=C
300A,00C3 BeamDescription X desc=C
300A,0072 FractionGroupDescription X desc=C
300A,0216 SourceManufacturer X dev=K
0016,004D CameraOwnerName X
0016,0051 LensSerialNumber X dev=K
0016,002B MakerNote X
"""

# repeating groups: (group mask, group value, element) -> row; element None = every element of the group
_GROUP_TABLE = """
60xx,4000 OverlayComments X desc=C
60xx,3000 OverlayData X graph=C
50xx,xxxx CurveData X graph=C
"""


@dataclass(frozen=True)
class Row:
    """One row of Table E.1-1: the Basic Profile action and the option columns that change it."""
    keyword: str
    basic: str
    options: dict[str, str] = field(default_factory=dict)


def _parse(text: str) -> list[tuple[str, Row]]:
    rows = []
    for line in text.strip().splitlines():
        tag, keyword, basic, *opts = line.split()
        rows.append((tag, Row(keyword, basic, dict(o.split("=") for o in opts))))
    return rows


#: tag (int, ``0xGGGGEEEE``) -> Row
TABLE: dict[int, Row] = {int(t.replace(",", ""), 16): r for t, r in _parse(_TABLE)}
#: (group high byte, element or None) -> Row for the repeating groups 50xx and 60xx
GROUP_TABLE: dict[tuple[int, int | None], Row] = {
    (int(t[:2], 16), None if t[5:] == "xxxx" else int(t[5:], 16)): r for t, r in _parse(_GROUP_TABLE)}


class OptionsError(PocketPacsError, ValueError):
    """Unknown de-identification options, or options that exclude each other (the message says which)."""


def check_options(options: Iterable[str]) -> frozenset[str]:
    """The options as a set, checked: every name known, no two that exclude each other.

    Parameters
    ----------
    options : iterable of str
        Names from :data:`OPTIONS`.

    Returns
    -------
    frozenset of str

    Raises
    ------
    OptionsError
        An unknown name (the known ones are listed) or two options of :data:`EXCLUSIVE`.
    """
    opts = frozenset(options)
    unknown = opts - set(OPTIONS)
    if unknown:
        raise OptionsError(f"unknown de-identification option(s): {', '.join(sorted(unknown))} "
                           f"(known: {', '.join(OPTIONS)})")
    for a, b in EXCLUSIVE:
        if a in opts and b in opts:
            raise OptionsError(f"the options {a} and {b} exclude each other (dates are kept as they are, "
                               f"or shifted): choose one")
    return opts


def row_for(tag: int) -> Row | None:
    """The row of Table E.1-1 for a tag (repeating groups included), or None when the table does not list it."""
    r = TABLE.get(tag)
    if r is not None:
        return r
    group, elem = tag >> 16, tag & 0xFFFF
    if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF and not group & 1:
        hi = group >> 8
        return GROUP_TABLE.get((hi, elem)) or GROUP_TABLE.get((hi, None))
    return None


def resolve(row: Row, options: frozenset[str]) -> str:
    """The single action for ``row`` under the chosen options.

    An option column that applies overrides the Basic Profile action (the
    most retaining wins: ``K`` over ``C``).  Compound Basic actions become
    one: ``Z`` when emptying is allowed (the element stays present, so
    Type 2 attributes stay valid), else ``D``, else ``U``, else ``X``;
    ``U*`` (a sequence of references) keeps the sequence with its UIDs replaced.

    Parameters
    ----------
    row : Row
    options : frozenset of str
        Names from :data:`OPTIONS`.

    Returns
    -------
    str
        One of ``X Z D K C U``.
    """
    chosen = [row.options[OPTIONS[o][0]] for o in options if OPTIONS[o][0] in row.options]
    if "K" in chosen:
        return "K"
    if "C" in chosen:
        return "C"
    parts = row.basic.split("/")
    if "U*" in parts:  # a sequence of references: kept, every UID in its items replaced
        return "U"
    for a in ("Z", "D", "U", "K", "C"):
        if a in parts:
            return a
    return "X"
